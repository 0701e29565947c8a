return require("monge.core")
