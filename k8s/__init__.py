"""arcscan's deployment files (Kubernetes manifests, Prometheus) and their offline checks (``k8s.checks``)."""
