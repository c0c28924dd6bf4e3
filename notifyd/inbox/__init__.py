"""Receiving: the inbox's messages, their store and their live fan-out to subscribers.

A notification to an inbox topic is stored as a message of that topic with the notification
(``store.message_rows``, staged by the submitter); its run offers it to the live subscribers
(``broker``), across processes through PostgreSQL's LISTEN/NOTIFY (``relay``).
"""
