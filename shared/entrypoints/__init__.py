"""The entry points, one module per surface: decode a trigger's input, call one service
function, encode the output. function_app imports a surface's module when one of its triggers
first runs (:mod:`.bot`, :mod:`.ingest`, :mod:`.delivery`, :mod:`.admin`, :mod:`.consent`,
:mod:`.console`; :mod:`.common` is what they share).
"""
