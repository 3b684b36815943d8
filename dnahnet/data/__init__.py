"""dnahnet.data"""
