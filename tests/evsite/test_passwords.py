from evsite.passwords import hash_password, verify_password


def test_hash_roundtrip_and_rejections():
    h = hash_password("s3cret", iterations=1000)
    assert verify_password("s3cret", h)
    assert not verify_password("S3cret", h)
    assert not verify_password("s3cret", "garbage")
    assert hash_password("s3cret", iterations=1000) != h  # salted
