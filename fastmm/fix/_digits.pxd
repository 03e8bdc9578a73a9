# cython: language_level=3
"""Decimal digits written straight into a C buffer: the compiled encoders' (fix/_encode_fast.pyx and
venues/truex/_encode_fast.pyx) one copy of them. Helpers, not codes: nothing here mirrors a Python
constant."""


cdef inline int _ndigits(unsigned long long v) noexcept:
    cdef int n = 1
    while v >= 10:
        v //= 10
        n += 1
    return n


cdef inline char* _put_digits(char* p, unsigned long long v, int n) noexcept:
    """Write ``v`` as exactly ``n`` decimal digits at ``p``; the end."""
    cdef int i = n - 1
    while i >= 0:
        p[i] = <char>(48 + v % 10)
        v //= 10
        i -= 1
    return p + n
