"""scaling-lab analysis: fits (Approaches 1-3, frontier, Kaplan), reference fits, plots,
reports and the planner. Depends on numpy, scipy, pandas and matplotlib only; never on JAX,
Flax, `lab` or `experiments`, so analysts can regenerate everything without the training stack.
"""
