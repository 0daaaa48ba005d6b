"""The mapping file: model (typed objects), dialects and codecs (directory differences as data),
policy (deprovisioning), load (YAML -> model, every problem with its YAML path)."""
