"""Reports for department heads and the service office: the daily report (JSON and a zh-CN
table), with the metric definitions it used printed alongside."""
