"""Stand-ins for the Hub in the recipe tests: recorded calls instead of uploads, and the names the pushes use. A
named module, not `conftest`, so that tests import it by a name no other folder's conftest shares."""


class HubCalls:
    """Records the Hub calls of `HfApi.create_repo` and `HfApi.upload_folder` instead of making them."""

    def __init__(self):
        self.create_repo: list[dict] = []
        self.upload_folder: list[dict] = []

    def install(self, monkeypatch):
        from huggingface_hub import CommitInfo, HfApi, RepoUrl

        def create_repo(api, repo_id, **kwargs):
            self.create_repo.append({"repo_id": repo_id, **kwargs})
            return RepoUrl(f"https://huggingface.co/{repo_id}")

        def upload_folder(api, *, repo_id, folder_path, **kwargs):
            from pathlib import Path

            files = sorted(str(p.relative_to(folder_path)) for p in Path(folder_path).rglob("*") if p.is_file())
            self.upload_folder.append({"repo_id": repo_id, "folder_path": str(folder_path), "files": files, **kwargs})
            return CommitInfo(
                commit_url=f"https://huggingface.co/{repo_id}/commit/0",
                commit_message=kwargs.get("commit_message") or "",
                commit_description="",
                oid="0" * 40,
            )

        monkeypatch.setattr(HfApi, "create_repo", create_repo)
        monkeypatch.setattr(HfApi, "upload_folder", upload_folder)
        return self


HUB_REPO = "me/tiny-trust-grpo"
DATASET_ID = "sophia-trl/synthetic-shapes"
