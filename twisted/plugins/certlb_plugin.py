from twisted.application.service import ServiceMaker

certlb = ServiceMaker(
    "certlb",
    "certlb.tap",
    "A TLS load balancer with client-certificate policies (HAProxy syntax)",
    "certlb",
)
