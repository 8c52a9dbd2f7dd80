"""Where a measurement runs: the Target contract, LocalTarget, SshTarget and the standalone runner."""
