-- +goose Up
-- +goose StatementBegin
CREATE TRIGGER identity_audit_no_update BEFORE UPDATE ON identity_audit
BEGIN
    SELECT RAISE(ABORT, 'identity_audit is append-only');
END;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE TRIGGER identity_audit_no_delete BEFORE DELETE ON identity_audit
BEGIN
    SELECT RAISE(ABORT, 'identity_audit is append-only');
END;
-- +goose StatementEnd
