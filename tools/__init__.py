"""Project tools that are neither the service, the trainer nor a benchmark: docs generators."""
