"""Status counts of a batch, kept as its messages change (the messages table's stream, `functions/status_counts`)."""
