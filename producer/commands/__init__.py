"""One module per command group of the ``docqueue`` CLI; ``producer.cli`` only registers them."""
