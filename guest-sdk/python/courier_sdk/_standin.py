"""What the SDK imports in place of the componentize-py bindings outside a
component (`python3 -m unittest`): the WIT's enums, a generic record or
variant case for every other type the SDK builds, and `outbound` and `log`
functions that hand everything to the `courier_sdk.testing.MockHost` that
is installed. Inside a component the real bindings are used."""

import enum
import sys
import types as _modules


class Ok:
    """A `result`'s `ok` case."""

    def __init__(self, value):
        self.value = value


class Err(Exception):
    """A `result`'s `err` case, raised as componentize-py raises it."""

    def __init__(self, value):
        super().__init__(value)
        self.value = value


class _Value:
    """A WIT record (keyword fields) or variant case (`value`, if any),
    named as componentize-py names it (`Request`, `Body_Json`)."""

    def __init__(self, *value, **fields):
        if value:
            (self.value,) = value
        self.__dict__.update(fields)

    def __eq__(self, other):
        return type(self) is type(other) and vars(self) == vars(other)

    def __repr__(self):
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def _enum(name, cases):
    return enum.Enum(name, [(case, i) for i, case in enumerate(cases.split())])


types = _modules.ModuleType("courier_sdk._standin.types")
types.Method = _enum("Method", "GET HEAD POST PUT PATCH DELETE OPTIONS")
types.TimeoutPhase = _enum("TimeoutPhase", "CONNECT TLS_HANDSHAKE FIRST_BYTE TOTAL STEP_DEADLINE")
types.KeyLocation = _enum("KeyLocation", "HEADER QUERY")
types.PlacementTarget = _enum("PlacementTarget", "HEADER QUERY FORM_FIELD JSON_FIELD")
types.ClientAuth = _enum("ClientAuth", "BASIC BODY")
types.JwtAlgorithm = _enum("JwtAlgorithm", "HS256 RS256 ES256")
types.CallKind = _enum("CallKind", "DATA ACTION")


def _type(name):
    """Any other type of the WIT by its binding's name, made once."""
    made = type(name, (_Value,), {})
    setattr(types, name, made)
    return made


types.__getattr__ = _type

log = _modules.ModuleType("courier_sdk._standin.log")
log.Level = _enum("Level", "TRACE DEBUG INFO WARN ERROR")

outbound = _modules.ModuleType("courier_sdk._standin.outbound")


def _host():
    """The `MockHost` standing in for the host."""
    testing = sys.modules.get("courier_sdk.testing")
    host = testing and testing.MockHost.installed
    if host is None:
        raise RuntimeError("no host outside a component: send within a "
                           "`with courier_sdk.testing.MockHost() as host:` block")
    return host


outbound.send = lambda request: _host().send(request)
outbound.send_all = lambda requests: _host().send_all(requests)
outbound.bound_connections = lambda: _host().bound_connections()
outbound.new_idempotency_key = lambda: _host().new_idempotency_key()
log.log = lambda level, message: _host().log(level, message)
