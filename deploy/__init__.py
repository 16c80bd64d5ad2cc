"""Serving Beanguard to a school: replicas behind nginx (python -m deploy.serve), nginx.conf, compose."""
