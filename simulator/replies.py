"""Every SMTP reply line intake-sim sends, named once (RFC 5321 / RFC 3463 codes)."""

S250_OK = "250 2.0.0 OK"
S250_ACCEPTED = "250 2.0.0 Accepted as delivery {delivery_id}"
S250_RECIPIENT_OK = "250 2.1.5 Recipient OK"
S451_STORE_UNAVAILABLE = "451 4.3.0 Storage unavailable, try again later"
S451_INTERNAL_ERROR = "451 4.3.0 Internal error, try again later"
S550_NO_SUCH_MAILBOX = "550 5.1.1 No such intake address here"
S553_BAD_ADDRESS = "553 5.1.3 Recipient address not understood"
