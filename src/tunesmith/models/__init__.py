"""Where base models come from: the offline catalog, local folders and hub ids."""
