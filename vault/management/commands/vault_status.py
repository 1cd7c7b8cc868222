"""manage.py vault_status: the key ring, what each master key wraps, data key versions, rewrap backlog, signing keys."""

from config.commands import FlowsCommand, Result
from vault.selectors import vault_status


class Command(FlowsCommand):
    help = (
        "Show the master key ring (ids only), how many keys each master key wraps, each client's data key "
        "versions, how many secrets are still on older versions, and the signing keys with their status."
    )
    example = "manage.py vault_status --json"

    def run(self, **options):
        status = vault_status()
        ring = status["key_ring"]
        lines = [
            "Master keys: "
            + (
                ring["error"]
                or ", ".join(f"{key_id}{' (primary)' if key_id == ring['primary'] else ''}" for key_id in ring["ids"])
            ),
            "Wrapped by master key: "
            + (", ".join(f"{key_id}: {n}" for key_id, n in status["wrapped_by_master_key"].items()) or "nothing"),
            f"Secrets on older data key versions: {status['secrets_on_old_versions']} (rewrap moves them)",
            "Clients:",
        ]
        for client in status["clients"]:
            if client["erased"]:
                state = "erased"
            else:
                state = f"data key v{client['active_version']}" if client["active_version"] else "no data key yet"
            lines.append(
                f"  {client['code']:<20} {state:<14} {client['live_versions']} live version(s), "
                f"{client['secrets_on_old_versions']} secret(s) to rewrap"
            )
        lines.append("Signing keys:")
        for key in status["signing_keys"]:
            until = f" (published until {key['publish_until']:%Y-%m-%d})" if key["publish_until"] else ""
            lines.append(f"  {key['kid']}  {key['status']}{until}")
        if not status["signing_keys"]:
            lines.append("  none (run rotate_signing_key)")
        return Result(status, "\n".join(lines))
