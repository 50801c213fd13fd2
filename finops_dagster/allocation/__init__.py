"""Shared costs allocated by rules: a source application's cost spread over target applications.

`rules` reads the rules (reference/data/allocation_rules.csv), `split` divides an amount exactly,
`engine` applies a month's rules in order to the month's direct relevés. The direct relevés are never
changed: allocation yields moves (from, to, how much, by which rule) beside them.
"""
