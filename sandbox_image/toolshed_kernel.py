"""The sandbox's kernel: IPython's, less the two iopub messages per request that no Toolshed face reads.

The engine reads a cell's outputs and its final "idle" status; the Jupyter face makes its own "busy" and
"execute_input" for its clients. Leaving them out saves the kernel and the server two of a trivial cell's five
messages (signed, sent, received, checked), which is a sixth of the machine's CPU per cell under load.
"""

from ipykernel.ipkernel import IPythonKernel


class ToolshedKernel(IPythonKernel):
    def _publish_execute_input(self, code, parent, execution_count):  # noqa: ANN001, ANN202
        pass

    def _publish_status(self, status, channel, parent=None):  # noqa: ANN001, ANN202
        if status != "busy":
            super()._publish_status(status, channel, parent)
