"""The ground floor: what every avfusion package shares and no package owns.

Every other package may import it; ``ensembling`` imports it and nothing else of ours. It needs only
the standard library, NumPy, PyYAML and (for one helper) pydantic: never torch, Ray or MLflow, so a
CLI's ``--help`` and a config's validation stay light.

- ``errors``: ``UserError``, the base of every error a user can cause (one line, exit status 2);
- ``cli``: the ``python -m PACKAGE`` frame (sub-commands, one-line errors, ``--debug``);
- ``guards``: untrusted names, ``--out``/``--force``, and text/YAML files (``names``, ``outdir``,
  ``textfile``);
- ``parsing``: ``key=value`` overrides and a pydantic error as one line;
- ``registry``: name -> entry tables whose unknown names list the known ones;
- ``tracking``: the MLflow tracking URI and the one health probe of a tracking server;
- ``afew``: AFEW's classes and train counts, read only by ``datasets``: the datasets' profiles
  (classes in label order, protocol, sizes; AFEW the default); ``metrics``: accuracy, UAR, the
  confusion matrix;
- ``figures``: the figures' house style (160 dpi, the one confusion matrix); the one module here
  that imports matplotlib, so it is imported where a figure is drawn;
- ``results``: the contract between a search and ``ensembling`` (MLflow tags, statuses,
  ``scores.npz``);
- ``progress``: the one progress display of long loops (a bar on a terminal, plain status lines
  in a log).
"""
