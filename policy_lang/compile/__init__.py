"""AST → executable rules: conditions as closures, rules indexed by target and scope."""

from .conditions import Ctx, Fn, Tests, compile_cond, compile_operand, rule_condition
from .index import CRule, Plan, TargetIndex

__all__ = ["CRule", "Ctx", "Fn", "Plan", "TargetIndex", "Tests", "compile_cond", "compile_operand", "rule_condition"]
