"""Licensing, pure: what seats cost and which model to choose.

Owns the price rules and shapes (prices), what each model costs and where the two
break even (costs), the recommendation and its sentences (advice), and the seat
engine (seats): which seat a signal opens, seats over time under the licensing
rules and every month's bill, for the ledger, the reports and the sweep alike.
Everything here is arithmetic on values passed in. It must never import
SQLAlchemy, read TOML or do any I/O, and imports only the domain below it.
"""
