"""Alert rules, generated dashboards, and a real Prometheus to check them against."""
