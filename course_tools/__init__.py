"""Instructor tooling (release, collect, grade, feedback, export). Students never import this."""
