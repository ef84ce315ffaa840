"""The LibreChat face: LibreChat's Code Interpreter API (/exec, uploads, downloads, session files)."""
