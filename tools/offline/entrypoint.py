"""Python half of the offline runtime's calling convention.

python.mjs runs this file in a module object of its own, the way workerd
loads its introspection module, so the Worker cannot import it. It follows
workerd v1.20260426.1 (src/pyodide/internal/introspection.py and
src/pyodide/python-entrypoint-helper.ts).
"""

import importlib
from inspect import isawaitable

from pyodide.code import relaxed_call
from workers import WorkerEntrypoint, python_from_rpc, python_to_rpc


def load_default_class(module_name):
    """Import the Worker's main module and return its ``Default`` entrypoint class.

    Raises TypeError when the module defines no ``Default`` subclass of
    WorkerEntrypoint, the only kind of Worker this runtime can run.
    """
    module = importlib.import_module(module_name)
    default = getattr(module, "Default", None)
    if not (isinstance(default, type) and issubclass(default, WorkerEntrypoint)):
        raise TypeError(
            f"{module.__file__} defines no class Default(WorkerEntrypoint); "
            "the offline runtime runs class-based Python Workers only"
        )
    return default


async def call_handler(relaxed, instance, name, *args):
    """Call handler ``name`` of an entrypoint instance as workerd does.

    Every argument goes through the SDK's python_from_rpc, so a JS Request
    becomes a workers.Request while objects such as a queue batch stay JS
    proxies. With ``relaxed`` (workerd sets it for fetch) arguments that the
    method does not declare are dropped. The result goes back through
    python_to_rpc, so a workers.Response becomes the JS Response.
    """
    method = getattr(instance, name)
    py_args = [python_from_rpc(arg) for arg in args]
    result = relaxed_call(method, *py_args) if relaxed else method(*py_args)
    if isawaitable(result):
        result = await result
    return python_to_rpc(result)
