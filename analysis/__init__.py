"""scaling-lab analysis: fits (Approaches 1-3, frontier, Kaplan), reference fits, plots,
reports and the planner. Depends on numpy, scipy, pandas and matplotlib only; never on JAX,
Flax, `lab` or `experiments`, so analysts can regenerate everything without the training stack.

Modules, from input to output:

Input
- sources       `load()`: a sweep directory, a CSV file or `example:NAME`, into one Dataset
- input_paths   local paths and gs:// URLs (read through fsspec) for the readers
- output_paths  `report --out gs://...`: written locally, then uploaded (pages last)
- csv_input     read a table: sniffed delimiter, empty or torn files refused (tables.json)
- loading       a table into a Dataset: columns resolved, C and D derived, bad rows counted
- columns       find N, D, C, loss by alias or explicit mapping; other candidate columns
- units         columns in the wrong units (N in millions...) and C against 6ND
- conventions   which parameter count is N and which FLOP count is C
- examples      the shipped Chinchilla and misfitting data sets
- errors        AnalysisError and its kinds: one-line messages naming the fix

Fits
- pipeline      run the requested fits on a Dataset; the `fit --json` document
- approach1     envelope of training curves (Hoffmann et al. 2022, Approach 1)
- approach2     IsoFLOP parabolas and their minima (Approach 2)
- approach3     fit the surface L(N, D) = E + A/N^alpha + B/D^beta (Approach 3)
- surface       the one owner of L(N, D), the exponents a, b and the optimal allocation
- repetition    Muennighoff et al.'s data-constrained law (effective data and parameters)
- repetition_fit    its Huber fit with bootstrap; repetition_study: the lab's own study
- huber_newton  batched damped Newton for Approach 3's Huber objective
- frontier      loss-vs-compute frontier L(C) and Kaplan-style L(N), L(D)
- allocation    N_opt = k_N C^a, D_opt = k_D C^b with their bootstrap
- powerlaw      log-log power laws and the saturating L(C) = E + (C0/C)^gamma
- bootstrap     resampling weights and percentile intervals (`ci_dict`)
- holdout       hold out the largest budget, fit the rest, predict it
- reference     published fits (Hoffmann, Besiroglu, Kaplan) with citations
- synthetic     ground-truth data from a known L(N, D), for tests and docs
- lr_tuning     per-size LR optimum and the LR_opt(N) law

Output
- cli           `scaling-lab fit | report` (and registers `plan`)
- report        report.md and a self-contained report.html: summary, contents, sections
- report_summary the summary: a, b, tokens per parameter, held-out check, plan
- report_tables every section's table (also what `fit` prints)
- table_format  how numbers and intervals are written
- plots         the report's figures
- study         both parameter conventions, E vs true entropy, cost and MFU
- convention_fits   Approaches 2 and 3 under every count of C and N
- sensitivity   the report's convention-sensitivity tables and their reading
- branching_study  a cosine sweep vs its branching twin: shared losses, seed noise, fits, FLOPs
- lr_report     the hyperparameter section and its figure

Planning
- plan_command  `scaling-lab plan`: its parser and handler
- plan_answer   one question -> its answer; plan_text: the answer as text
- planner       budget -> compute-optimal N, D, loss (and inference-aware); distance from the data
- plan_inverse  fixed N, fixed D, a model placed on the frontier, a target loss
- plan_constrained  a pool of U unique tokens: best N and epochs (Muennighoff et al. 2023)
- plan_sources  where the planner's L(N, D) comes from (a fit file or a published fit)
"""
