"""The circuit compiler: calibrated IR graph + CKKS preset -> Plan."""

from resnet_fhe.compiler.calibrate import Calibration, calibrate
from resnet_fhe.compiler.compile import CompileOptions, compile_graph, compile_model

__all__ = ["Calibration", "CompileOptions", "calibrate", "compile_graph", "compile_model"]
