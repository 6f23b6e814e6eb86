"""One thin module per subcommand: parse, validate, call the library, write."""
