"""What every HTTP face shares: the key check, the table from exceptions to error envelopes, body limits and
client disconnects. No face's routes live here."""
