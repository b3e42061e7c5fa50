-- Values from outside are bounded when an exception is raised (RaiseException); rows
-- raised before that may hold a whole 500 MB field. Cut them once, noting the size,
-- so that listing exceptions and building the digest stay small.
UPDATE exceptions SET message = substr(message, 1, 2048) || '…(' || octet_length(message) || ' bytes)'
    WHERE octet_length(message) > 8192;
UPDATE exceptions SET value = substr(value, 1, 256) || '…(' || octet_length(value) || ' bytes)'
    WHERE octet_length(value) > 1024;
UPDATE exceptions SET subject = substr(subject, 1, 255) || '…(' || octet_length(subject) || ' bytes)'
    WHERE octet_length(subject) > 1024;
UPDATE exceptions SET action = substr(action, 1, 2048) || '…(' || octet_length(action) || ' bytes)'
    WHERE octet_length(action) > 8192;
UPDATE files SET reason = substr(reason, 1, 2048) || '…(' || octet_length(reason) || ' bytes)'
    WHERE octet_length(reason) > 8192;
