"""Nurture programs (DESIGN.md §3b): definition, the step runner shared by the live scheduler
and `simulate`, e-mail with tracked links, next best content."""

from leadscore.programs.definition import Program, load_program, load_programs

__all__ = ["Program", "load_program", "load_programs"]
