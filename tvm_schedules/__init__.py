"""TVM schedules for models rewritten by lsc-ort, one folder per target (cpu, cuda, arm).

Planned: this package is where the TVM compile flow for LSCMatMul / LSCConv will live.
"""
