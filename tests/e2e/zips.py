"""Real zips for the end-to-end tests."""
import os
import zipfile


def sample(path, app_id="20171228"):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr(f"{app_id}/www/index.html", "<!doctype html><title>Checkout</title><h1>Checkout</h1>\n")
        z.writestr(f"{app_id}/www/app.js", "console.log('courier');\n" * 500)
        z.writestr(f"{app_id}/www/css/site.css", "body { color: #333 }\n")
    return path


def large(path, megabytes, app_id="20171228"):
    """Incompressible content stored as several files: a realistic big upload."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{app_id}/www/index.html", "<h1>big</h1>")
        for i in range(megabytes // 8):
            z.writestr(f"{app_id}/www/assets/blob{i}.bin", os.urandom(8 << 20))
    return path
