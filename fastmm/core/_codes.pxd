# The codes the core's compiled twins share with their pure twins, as C constants (cimported, so the
# values are compiled in and no module is imported at run time). One place: a .pyx cimports them rather
# than writing the numbers again, and tests/test_twin_codes.py checks each against its Python constant.

cdef enum:
    # the intent kinds of fastmm.core.reconcile (CANCEL, MOVE, NEW)
    INTENT_CANCEL = 0
    INTENT_MOVE = 1
    INTENT_NEW = 2

cdef enum:
    # fastmm.core.types.Side
    SIDE_BUY = 1
    SIDE_SELL = 2
