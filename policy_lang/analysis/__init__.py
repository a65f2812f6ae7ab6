"""Tools over a compiled policy set, one module each: ``explain`` (why a request
got its decision), ``who_can`` (who may use a resource, and under which
conditions), ``diff`` (which decisions change between two sets, over requests
that ``requests`` generates), ``testing`` (the policy test runner and its rule
coverage), and ``conditions`` (conditions rendered, folded and read, which they share).

The highest layer but the command line: it may import every layer below.
"""
