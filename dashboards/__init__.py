"""The leadership KPI dashboard: data from the warehouse (data.py), an offline HTML page (render.py),
and an atomic publish into the output folder (publish.py)."""
