"""Closing the delivery loop: every SUBMITTED message gets a receipt deadline; past it without a final receipt, the
scheduled reconcile function asks the provider (Alibaba QueryMessage, Tencent PullSmsSendStatusByPhoneNumber) or,
where no query exists (Huawei), ends it EXPIRED / NO_RECEIPT. docs/final-status.md."""
