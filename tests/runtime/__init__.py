"""Runtime suites: bundle reading, backends, composition, the mix/info CLI, video and animation."""
