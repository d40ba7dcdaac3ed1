"""The C API of the runtime: ``libmnm.so`` and ``mnm.h`` (docs/capi.md).

``build`` makes the library (``make cpp``); inside it, ``bridge`` implements the functions of mnm.h
on the public runtime API, with ``convert`` (C structs to numpy and back) and ``handles`` (open
pipelines and animators by number). Nothing here imports torch; only ``build`` needs cffi at import.
"""
