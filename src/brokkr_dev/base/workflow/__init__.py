"""Play a GitHub Actions workflow on this machine, as close to a stock runner as we can.

CI runs `.github/workflows/*.yml` here by reading them, not by copying their commands:
`plan` loads a workflow (expanding `uses: ./.github/workflows/X.yml` jobs) and orders
its jobs by `needs:`; `expressions` evaluates the `${{ }}` forms we use, `hashFiles()`
included; `actions` plays each `uses:` step by its closest local equivalent (the cache
is a directory that outlives the run); `play` runs the `run:` steps with bash. The
command line is `python3 -m brokkr_dev.base.workflow play --help`.
"""
