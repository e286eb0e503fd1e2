"""The Helm charts' gate: lint, render, schemas, generated docs and CRD schemas."""
