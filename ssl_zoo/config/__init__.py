from ssl_zoo.config.config import CfgNode, ConfigError, get_cfg

__all__ = ["CfgNode", "ConfigError", "get_cfg"]
