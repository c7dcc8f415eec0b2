"""xetra: the weekly Xetra report job (daily per-ISIN report from Deutsche Börse's PDS data)."""
