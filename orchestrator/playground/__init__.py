"""The Playground face: a static web page at /playground for building and trying assistants in a browser. It
serves files only; everything the page does goes through the public /v1 API with the key the user types."""
