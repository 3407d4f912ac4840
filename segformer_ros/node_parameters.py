"""Declare the node's ROS parameters from the ROS-free table in :mod:`.parameters`."""

from typing import Any, Dict, List

from rcl_interfaces.msg import (FloatingPointRange, IntegerRange, ParameterDescriptor,
                                SetParametersResult)
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.node import Node
from rclpy.parameter import Parameter

from .parameters import (PARAMETER_NAMES, PARAMETERS, ParamSpec, check_value, coerce_value,
                         is_float_param, unknown_parameter_message)
from .rclpy_internals import parameter_overrides

# Parameters the node accepts besides ours (rclpy's own, and launch-provided ones).
_FOREIGN_OK = ('use_sim_time', 'start_type_description_service', 'qos_overrides.')


def _descriptor(p: ParamSpec) -> ParameterDescriptor:
    d = ParameterDescriptor(description=p.description, read_only=p.read_only)
    if p.choices:
        d.additional_constraints = 'one of: ' + ', '.join(p.choices)
    if p.default == [] or is_float_param(p):
        # An empty list has no element type; let the value from the params file decide
        # and check it ourselves in validate_parameter(). Float parameters too: users type
        # `batch_window_ms:=5` or `mean: [0, 0, 0]`, which ROS reads as integers and a
        # statically typed DOUBLE parameter refuses (validate_parameter checks for numbers,
        # read_all hands out floats).
        d.dynamic_typing = True
    if isinstance(p.default, float) and p.min_value is not None and p.max_value is not None:
        # rclpy checks it for DOUBLE values (and `ros2 param describe` shows it); integers
        # get the same range check in validate_parameter().
        d.floating_point_range = [FloatingPointRange(from_value=float(p.min_value),
                                                     to_value=float(p.max_value), step=0.0)]
    elif isinstance(p.default, int) and not isinstance(p.default, bool) \
            and p.min_value is not None and p.max_value is not None:
        d.integer_range = [IntegerRange(from_value=int(p.min_value), to_value=int(p.max_value),
                                        step=0)]
    return d


def validate_parameter(param: Parameter) -> SetParametersResult:
    """Check one parameter against its spec; the reason goes back to the caller."""
    if param.name not in PARAMETER_NAMES:
        return SetParametersResult(successful=True)
    value = param.value
    p = next(s for s in PARAMETERS if s.name == param.name)
    if p.default == [] and value is not None:
        if not isinstance(value, (list, tuple)) or any(not isinstance(v, str) for v in value):
            return SetParametersResult(
                successful=False,
                reason=f'{param.name} must be a list of strings, got {value!r}')
        return SetParametersResult(successful=True)
    reason = check_value(param.name, value)
    return SetParametersResult(successful=reason is None, reason=reason or '')


def declare_all(node: Node) -> List[str]:
    """Declare every parameter; return messages about rejected overrides and unknown keys.

    A value from the params file or command line that is out of range is rejected with
    its reason and the default is used instead, so a typo never stops the process; the
    caller logs the returned messages.
    """
    problems: List[str] = []
    for p in PARAMETERS:
        default = None if p.default == [] else p.default
        try:
            node.declare_parameter(p.name, default, _descriptor(p))
        except (InvalidParameterValueException, InvalidParameterTypeException) as exc:
            problems.append(f'parameter {p.name}: override rejected ({exc}); using the default '
                            f'{p.default!r}')
            node.declare_parameter(p.name, default, _descriptor(p), ignore_override=True)
    overrides = parameter_overrides(node)
    for name in overrides:
        if name not in PARAMETER_NAMES and not name.startswith(_FOREIGN_OK):
            problems.append(unknown_parameter_message(name))
    return problems


def read_all(node: Node) -> Dict[str, Any]:
    """Read the current values of all our parameters (unset lists read as [])."""
    values: Dict[str, Any] = {}
    for p in PARAMETERS:
        # get_parameter_or: setting a dynamically typed parameter to "not set" undeclares
        # it in rclpy; read that as its default instead of failing configure.
        value = node.get_parameter_or(p.name, Parameter(p.name, value=p.default)).value
        if value is None and p.default == []:
            value = []
        elif isinstance(value, (list, tuple)) or type(value).__name__ == 'array':
            value = list(value)
        values[p.name] = coerce_value(p.name, value)
    return values
