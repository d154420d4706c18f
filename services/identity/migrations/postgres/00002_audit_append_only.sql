-- +goose Up
-- +goose StatementBegin
CREATE FUNCTION identity_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'identity_audit is append-only';
END;
$$ LANGUAGE plpgsql;
-- +goose StatementEnd
CREATE TRIGGER identity_audit_no_change BEFORE UPDATE OR DELETE ON identity_audit
    FOR EACH ROW EXECUTE FUNCTION identity_audit_append_only();
