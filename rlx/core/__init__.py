"""The ground floor: data types, config schema helpers, the runtime, interrupts, user code."""
