"""Customer value models fitted in Python: the sBG retention parameters behind kpi_clv and customer_risk."""
