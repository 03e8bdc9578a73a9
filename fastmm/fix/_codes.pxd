# The codes the FIX compiled twins (fastmm/fix/_parse_fast.pyx, fastmm/venues/truex/_decode_fast.pyx)
# share with their pure twins, as C constants (cimported, so the values are compiled in and no module is
# imported at run time). One place: a .pyx cimports them rather than writing the numbers again, and
# tests/test_twin_codes.py checks each against its Python constant in fastmm.fix.codec.

cdef enum:
    # SessionRejectReason (373) values: fastmm.fix.codec.REJ_*
    REJ_INVALID_TAG = 0
    REJ_REQUIRED_TAG_MISSING = 1
    REJ_TAG_NOT_DEFINED = 2
    REJ_UNDEFINED_TAG = 3
    REJ_TAG_WITHOUT_VALUE = 4
    REJ_VALUE_INCORRECT = 5
    REJ_DATA_FORMAT = 6
    REJ_SIGNATURE = 8
    REJ_COMPID = 9
    REJ_SENDING_TIME = 10
    REJ_INVALID_MSGTYPE = 11
    REJ_OUT_OF_ORDER = 14
    REJ_GROUP_COUNT = 16
    REJ_OTHER = 99

cdef enum:
    # the frame parser's limits: fastmm.fix.codec._MAX_BEGIN, _MAX_LEN_DIGITS, _MAX_TAG_DIGITS,
    # len(_SYNC), and one past the largest tag of _TAG_CACHE
    MAX_BEGIN = 32
    MAX_LEN_DIGITS = 12
    MAX_TAG_DIGITS = 9
    SYNC_LEN = 5
    TAG_CACHE = 3000
