"""The Jupyter face: the kernels REST API and kernel-channel websockets of jupyter_server."""
