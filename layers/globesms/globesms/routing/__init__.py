"""Which provider carries a recipient, with which template: capabilities, the route table, templates, the router."""
