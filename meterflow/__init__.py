"""MeterFlow: remote meter reading and prepaid billing for electricity and water."""

__version__ = "0.1.0"
